from tokenboard.cli import main

main()
