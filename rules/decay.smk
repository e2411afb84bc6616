rule decay:
    input:
        predictions=R("predictions/{model}/{bench}.parquet"),
        item_table=R("staged/{bench}/items.parquet"),
    output:
        metrics=R("decay/{model}/{bench}.parquet"),
        classes=R("decay/{model}/{bench}.items.parquet"),
        manifest=R("decay/{model}/{bench}.manifest.json"),
    params:
        slice=slice_param("decay"),
    log:
        R("logs/decay/{model}/{bench}.log"),
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("decay")
