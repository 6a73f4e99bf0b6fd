from mcncl.cli import main

main()
