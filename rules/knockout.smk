rule knockout:
    input:
        **stage_inputs("knockout"),
        weights=model_files,
    output:
        **stage_outputs("knockout"),
    params:
        **stage_params("knockout"),
    resources:
        gpu=model_gpus,
    benchmark:
        stage_benchmark("knockout")
    log:
        stage_log("knockout"),
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("knockout")
