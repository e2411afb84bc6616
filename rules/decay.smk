rule decay:
    input:
        predictions="results/predictions/{model}/{bench}.parquet",
    output:
        metrics="results/decay/{model}/{bench}.parquet",
        table="results/decay/{model}/{bench}.items.parquet",
        manifest="results/decay/{model}/{bench}.manifest.json",
    params:
        slice=decay_slice_json,
    log:
        "results/logs/decay/{model}/{bench}.log",
    conda:
        "../envs/blindspot.yaml"
    shell:
        "blindspot decay --bench {wildcards.bench} --slice {params.slice:q} --predictions {input.predictions:q}"
        " --out-dir $(dirname {output.metrics:q}) > {log:q} 2>&1"
