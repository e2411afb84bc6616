rule swap:
    input:
        **stage_inputs("swap"),
        weights=pair_files,
    output:
        **stage_outputs("swap"),
    params:
        **stage_params("swap"),
    resources:
        gpu=pair_gpus,
    benchmark:
        stage_benchmark("swap")
    log:
        stage_log("swap"),
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("swap")
