rule swap:
    input:
        **stage_inputs("swap"),
        **stage_weights("swap"),
    output:
        **stage_outputs("swap"),
    params:
        **stage_params("swap"),
    resources:
        **stage_resources("swap"),
    benchmark:
        stage_benchmark("swap")
    log:
        stage_log("swap"),
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("swap")
