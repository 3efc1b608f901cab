"""The baseline: the least a Django webhook endpoint can do (store the body, answer 200)."""
