from pipeline.bench.train import main

main()
