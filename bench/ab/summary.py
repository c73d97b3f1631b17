"""Medians of an A/B run (bench/ab/run.sh): one table row per measure, old and new build.

usage: summary.py [OUT]   (default /tmp/ab)"""
import sys
import glob,re,statistics as st,collections
OUT = sys.argv[1] if len(sys.argv) > 1 else '/tmp/ab'
d=collections.defaultdict(lambda: collections.defaultdict(list))
for f in sorted(glob.glob(OUT + '/*.log')):
    k,b,r=re.match(r'.*/(\w+)-(old|new)-(\d+)\.log',f).groups()
    t=open(f).read()
    if k=='ingest':
        for l in t.splitlines():
            if l.startswith('| rubra serve'):
                c=[x.strip() for x in l.split('|')]
                d['ingest events/s'][b].append(float(c[2].replace(',','')))
                d['ingest p99 ms'][b].append(float(c[5]))
    if k=='stats':
        names=['stats range 6dp','stats range 2dp','stats 30d','stats 30d 1h buckets']
        rows=[l for l in t.splitlines() if re.match(r'\| (random|all)',l)]
        for n,l in zip(names,rows):
            d[n+' median ms'][b].append(float(l.split('|')[2]))
    if k=='latency':
        for l in t.splitlines():
            if l.startswith('| POST /events'):
                c=[x.strip() for x in l.split('|')]
                d['event->webhook p99 ms'][b].append(float(c[10])); d['event->webhook p50 ms'][b].append(float(c[8]))
    if k=='jobs':
        for l in t.splitlines():
            m=re.match(r'\| rubra POST /jobs → done, (.*?) \| ([\d.]+) \|',l)
            if m: d['job s '+m.group(1)][b].append(float(m.group(2)))
print('| measure | old: median (n) | new: median (n) | new/old |')
print('|---|---:|---:|---:|')
for k,v in d.items():
    o,n=st.median(v['old']),st.median(v['new'])
    print(f"| {k} | {o:g} ({len(v['old'])}) | {n:g} ({len(v['new'])}) | {n/o:.3f} |")
