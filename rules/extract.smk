rule extract:
    input:
        table="results/staged/{bench}/items.parquet",
        render="results/render/{bench}.zarr",
    output:
        directory("results/hidden/{model}/{bench}.zarr"),
    params:
        slice=extract_slice_json,
    resources:
        gpu=1,
    benchmark:
        "results/benchmarks/extract/{model}/{bench}.tsv"
    log:
        "results/logs/extract/{model}/{bench}.log",
    conda:
        "../envs/blindspot.yaml"
    shell:
        "blindspot extract --model {wildcards.model} --slice {params.slice:q} --items {input.table:q}"
        " --render {input.render:q} --out {output:q} > {log:q} 2>&1"
