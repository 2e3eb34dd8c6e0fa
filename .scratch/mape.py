import json,sys
for f in sys.argv[1:]:
    d=json.load(open(f))
    print(f, ' '.join('%s/%s fit %.1f held %.1f' % (r['side'][:4], r['key'], 100*r['mape'], 100*(r['heldOutMape'] or 0)) for r in d['fits'] if r['key'] in ('conv','fc')))
