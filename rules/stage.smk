rule stage:
    input:
        source=benchmark_files,
    output:
        item_table="results/staged/{bench}/items.parquet",
        images="results/staged/{bench}/images.parquet",
        rejects="results/staged/{bench}/rejects.parquet",
    params:
        slice=slice_param("stage"),
    log:
        "results/logs/stage/{bench}.log",
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("stage")
