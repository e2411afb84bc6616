rule decay:
    input:
        predictions="results/predictions/{model}/{bench}.parquet",
        item_table="results/staged/{bench}/items.parquet",
    output:
        metrics="results/decay/{model}/{bench}.parquet",
        classes="results/decay/{model}/{bench}.items.parquet",
        manifest="results/decay/{model}/{bench}.manifest.json",
    params:
        slice=slice_param("decay"),
    log:
        "results/logs/decay/{model}/{bench}.log",
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("decay")
