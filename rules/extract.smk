rule extract:
    input:
        **stage_inputs("extract"),
        weights=model_files,
    output:
        **stage_outputs("extract"),
    params:
        **stage_params("extract"),
    resources:
        gpu=model_gpus,
    benchmark:
        stage_benchmark("extract")
    log:
        stage_log("extract"),
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("extract")
