rule probe:
    input:
        hidden=R("hidden/{model}/{bench}.zarr"),
        item_table=R("staged/{bench}/items.parquet"),
    output:
        probes=R("probes/{model}/{bench}.parquet"),
    params:
        slice=slice_param("probe"),
    benchmark:
        R("benchmarks/probe/{model}/{bench}.tsv")
    log:
        R("logs/probe/{model}/{bench}.log"),
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("probe")
