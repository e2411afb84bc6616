rule render:
    input:
        images="results/staged/{bench}/images.parquet",
    output:
        store=directory("results/render/{bench}.zarr"),
    params:
        slice=slice_param("render"),
    threads: 2
    log:
        "results/logs/render/{bench}.log",
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("render")
