rule lens:
    input:
        **stage_inputs("lens"),
        weights=model_files,
    output:
        **stage_outputs("lens"),
    params:
        **stage_params("lens"),
    resources:
        gpu=model_gpus,
    benchmark:
        stage_benchmark("lens")
    log:
        stage_log("lens"),
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("lens")
