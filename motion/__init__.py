"""What moves: body models, skeletons, motion data and its files, retargeting, generation.

Importing this package needs numpy only (never bpy; torch only inside the body-model functions).
"""

from motion.errors import UserError
from motion.motion import Motion

__all__ = ["Motion", "UserError"]
