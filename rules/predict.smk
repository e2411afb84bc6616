rule predict:
    input:
        **stage_inputs("predict"),
        weights=model_files,
    output:
        **stage_outputs("predict"),
    params:
        **stage_params("predict"),
    resources:
        gpu=model_gpus,
    benchmark:
        stage_benchmark("predict")
    log:
        stage_log("predict"),
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("predict")
