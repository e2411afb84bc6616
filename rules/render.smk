rule render:
    input:
        **stage_inputs("render"),
    output:
        **stage_outputs("render"),
    params:
        slice=slice_param("render"),
    threads: 2
    log:
        stage_log("render"),
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("render")
