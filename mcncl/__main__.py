from mcncl.warm import main

main()
