"""The judge: requirement lists (profiles), the one pure function that turns a result into
verdicts against a list, and the coverage of a verdict. Above ``measure``, below ``render``.
"""
