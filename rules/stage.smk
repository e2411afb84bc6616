rule stage:
    input:
        source=benchmark_files,
    output:
        **stage_outputs("stage"),
    params:
        **stage_params("stage"),
    resources:
        **stage_resources("stage"),
    log:
        stage_log("stage"),
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("stage")
