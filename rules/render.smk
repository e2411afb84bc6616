rule render:
    input:
        images=R("staged/{bench}/images.parquet"),
    output:
        store=directory(R("render/{bench}.zarr")),
    params:
        slice=slice_param("render"),
    threads: 2
    log:
        R("logs/render/{bench}.log"),
    conda:
        "../envs/blindspot.yaml"
    shell:
        cli("render")
