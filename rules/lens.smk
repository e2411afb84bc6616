rule lens:
    input:
        **stage_inputs("lens"),
        **stage_weights("lens"),
    output:
        **stage_outputs("lens"),
    params:
        **stage_params("lens"),
    resources:
        **stage_resources("lens"),
    benchmark:
        stage_benchmark("lens")
    log:
        stage_log("lens"),
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("lens")
