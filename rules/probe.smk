rule probe:
    input:
        **stage_inputs("probe"),
    output:
        **stage_outputs("probe"),
    params:
        **stage_params("probe"),
    benchmark:
        stage_benchmark("probe")
    resources:
        **stage_resources("probe"),
    log:
        stage_log("probe"),
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("probe")
