rule probe:
    input:
        hidden="results/hidden/{model}/{bench}.zarr",
        item_table="results/staged/{bench}/items.parquet",
    output:
        probes="results/probes/{model}/{bench}.parquet",
    params:
        slice=slice_param("probe"),
    benchmark:
        "results/benchmarks/probe/{model}/{bench}.tsv"
    log:
        "results/logs/probe/{model}/{bench}.log",
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("probe")
