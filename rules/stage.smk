rule stage:
    input:
        source=benchmark_files,
    output:
        item_table=R("staged/{bench}/items.parquet"),
        images=R("staged/{bench}/images.parquet"),
        rejects=R("staged/{bench}/rejects.parquet"),
    params:
        slice=slice_param("stage"),
    log:
        R("logs/stage/{bench}.log"),
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("stage")
