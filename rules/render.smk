rule render:
    input:
        images="results/staged/{bench}/images.parquet",
    output:
        directory("results/render/{bench}.zarr"),
    params:
        slice=render_slice_json,
    threads: 2
    log:
        "results/logs/render/{bench}.log",
    conda:
        "../envs/blindspot.yaml"
    shell:
        "blindspot render --images {input.images:q} --slice {params.slice:q}"
        " --workers {threads} --out {output:q} > {log:q} 2>&1"
