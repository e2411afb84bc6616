rule knockout:
    input:
        **stage_inputs("knockout"),
        **stage_weights("knockout"),
    output:
        **stage_outputs("knockout"),
    params:
        **stage_params("knockout"),
    resources:
        **stage_resources("knockout"),
    benchmark:
        stage_benchmark("knockout")
    log:
        stage_log("knockout"),
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("knockout")
