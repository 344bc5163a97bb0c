import sys

from diffusion.embedded.build import main

sys.exit(main())
