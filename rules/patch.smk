rule patch:
    input:
        **stage_inputs("patch"),
        weights=model_files,
    output:
        **stage_outputs("patch"),
    params:
        **stage_params("patch"),
    resources:
        gpu=model_gpus,
    benchmark:
        stage_benchmark("patch")
    log:
        stage_log("patch"),
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("patch")
