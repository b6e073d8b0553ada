"""The key ring's bookkeeping: which key encrypted how many stored values, and re-encryption with the current one."""
