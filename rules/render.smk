rule render:
    input:
        **stage_inputs("render"),
    output:
        **stage_outputs("render"),
    params:
        **stage_params("render"),
    threads: 2
    resources:
        **stage_resources("render"),
    log:
        stage_log("render"),
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("render")
