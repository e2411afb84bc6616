rule stage:
    input:
        source=benchmark_files,
    output:
        **stage_outputs("stage"),
    params:
        slice=slice_param("stage"),
    log:
        stage_log("stage"),
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("stage")
