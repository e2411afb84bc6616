rule probe:
    input:
        **stage_inputs("probe"),
    output:
        **stage_outputs("probe"),
    params:
        slice=slice_param("probe"),
    benchmark:
        stage_benchmark("probe")
    log:
        stage_log("probe"),
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("probe")
