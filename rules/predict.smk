rule predict:
    input:
        table="results/staged/{bench}/items.parquet",
        render="results/render/{bench}.zarr",
    output:
        "results/predictions/{model}/{bench}.parquet",
    params:
        slice=predict_slice_json,
    resources:
        gpu=1,
    benchmark:
        "results/benchmarks/predict/{model}/{bench}.tsv"
    log:
        "results/logs/predict/{model}/{bench}.log",
    conda:
        "../envs/blindspot.yaml"
    shell:
        "blindspot predict --model {wildcards.model} --slice {params.slice:q} --items {input.table:q}"
        " --render {input.render:q} --out {output:q} > {log:q} 2>&1"
