"""The sha256 of every offline dataset file t2 reads, pinned from `shared/datasets/README.md`.

That README records where each verified copy came from and its hash. Pinning the hashes here
means a file that was damaged or swapped for another revision is refused when it is read
(`t2core.tasks.data.load_samples`), instead of being silently recorded with each run.
"""

PINNED: dict[str, str] = {
    "gsm8k/train.jsonl": "17f347dc51477c50d4efb83959dbb7c56297aba886e5544ee2aaed3024813465",
    "gsm8k/test.jsonl": "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14",
    "arc/ARC-Easy/ARC-Easy-Train.jsonl": "c62e5482d8c01f2d5a7f24239ac9db3b12f9e47267c4e3f088c6ffe41d5545ef",
    "arc/ARC-Easy/ARC-Easy-Dev.jsonl": "f4364b808a68df6bf500ce1070fb0105d40cacd2391c210deb00ff83ba75d1f4",
    "arc/ARC-Easy/ARC-Easy-Test.jsonl": "ce32a0774b4beb1977d2c6b16dda5dd2b24fdc9c7f506882c452678676bd09be",
    "arc/ARC-Challenge/ARC-Challenge-Train.jsonl": "e02837c53ee86f6d73c259f91c77725c5062ef4531130b7f473a9d9b01118a77",
    "arc/ARC-Challenge/ARC-Challenge-Dev.jsonl": "55224364abd2477f66a9a57c5cbef109fb71d83019aa5e37aec0e7ab757746ca",
    "arc/ARC-Challenge/ARC-Challenge-Test.jsonl": "9fa8ffb3e3a1f88cb302d53dd95aae81e39209ad9bcf974376b319d8fd35717c",
    "mbpp/mbpp.jsonl": "ccf64ceae9c5403bf50a044cb6d505bfd2a2963ee58338ba268fd65beab92a9f",
    "mbpp/sanitized-mbpp.json": "7fec016546acaee11dbe14f9f0bb670e59f41919f7b522a59fba34871da78551",
    "humaneval/HumanEval.jsonl.gz": "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef",
    "math/train.jsonl.gz": "d7f372c88f779618841c8849a8544be425fa371c03819c20cd1b23b0217eac1a",
    "math/test.jsonl.gz": "f7b63f349fcfa6b251e5c116d37d456ba159e66f87604b7ad20ce838b1a93e9a",
    "math500/test.jsonl": "35dc41080a3680858b27fa7e0533d2d547825316fc5dafe5d316f4ccc5a06132",
}
