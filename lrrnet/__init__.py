"""LRRNet: deep low-rank background network for infrared small target detection.

Zhang et al., "It's Not the Target, It's the Background: Rethinking Infrared Small Target
Detection via Deep Patch-Free Low-Rank Representations", IEEE TGRS 2025.
"""

__version__ = "0.1.0"
