rule decay:
    input:
        **stage_inputs("decay"),
    output:
        **stage_outputs("decay"),
    params:
        **stage_params("decay"),
    resources:
        **stage_resources("decay"),
    log:
        stage_log("decay"),
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("decay")
