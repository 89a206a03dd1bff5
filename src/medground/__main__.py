from medground.cli import main

main()
