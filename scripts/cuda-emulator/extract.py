# Pulls the CUDA C source out of Kernels.swift and writes kernels.inc plus the
# name registry into the directory given second.
import re, sys
s = open(sys.argv[1]).read()
body = s[s.index('#"""') + 4 : s.index('"""#')]
lines = [l[4:] if l.startswith('    ') else l for l in body.split('\n')]
src = '\n'.join(lines)
open(sys.argv[2] + '/kernels.inc', 'w').write(src)
names = re.findall(r'extern "C" __global__ void (\w+)\(', src)
open(sys.argv[2] + '/registry.inc', 'w').write(''.join('{"%s", launcher(%s)},\n' % (n, n) for n in names))
print(len(names), 'kernels')
