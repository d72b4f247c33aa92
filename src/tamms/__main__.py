from tamms.cli import main

main()
