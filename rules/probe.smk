rule probe:
    input:
        hidden="results/hidden/{model}/{bench}.zarr",
        table="results/staged/{bench}/items.parquet",
    output:
        "results/probes/{model}/{bench}.parquet",
    params:
        slice=probe_slice_json,
    benchmark:
        "results/benchmarks/probe/{model}/{bench}.tsv"
    log:
        "results/logs/probe/{model}/{bench}.log",
    conda:
        "../envs/blindspot.yaml"
    shell:
        "blindspot probe --model {wildcards.model} --slice {params.slice:q} --hidden {input.hidden:q}"
        " --items {input.table:q} --out {output:q} > {log:q} 2>&1"
