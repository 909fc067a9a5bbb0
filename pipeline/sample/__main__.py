from pipeline.sample.builder import main

main()
