from t2g.cli import main

main()
