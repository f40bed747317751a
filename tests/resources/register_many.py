"""One of several processes registering versions of the same model at once."""

import sys

import plinth

count = int(sys.argv[1])
for i in range(count):
    mv = plinth.register_model("shared", lambda data, i=i: [i] * len(data), flavor="python")
    print(mv.version, flush=True)
