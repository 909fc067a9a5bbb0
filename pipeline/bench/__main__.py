from pipeline.bench.cli import main

main()
