from pgcluster.cli import main

raise SystemExit(main())
