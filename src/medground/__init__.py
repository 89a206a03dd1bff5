"""medground: ground clinical language in medical images with vision-language models.

Train (GRPO / SFT on TRL), evaluate and serve models that answer a clinical phrase or
question with a box, key points and, through a frozen segmenter, a mask.
"""

__version__ = "0.1.0"
