"""DSES: generation of the emotional spoof corpus (TTS back-ends and the synthesis pipeline).

See DSES/README.md; the entry point is `DSES/synthesize.py` (`synthesize_corpus`).
"""
