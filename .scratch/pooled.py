import sqlite3,json,sys,numpy as np
db=sqlite3.connect(sys.argv[1]); n=int(sys.argv[2]) if len(sys.argv)>2 else 3
cids=[r[0] for r in db.execute("select id from campaigns where kind='layers' and status='done' order by started_at desc limit ?",(n,))]
for key in ('conv','fc'):
 for side in ('edge','device'):
  data={}
  for c in cids:
    for s,f,y,h in db.execute("select spec_json, features_json, run_ms, held_out from measurements where campaign_id=? and side=? and regression_key=?",(c,side,key)):
      data.setdefault(s,[json.loads(f),[],h])[1].append(y)
  X=np.array([v[0] for v in data.values()]); y=np.array([np.median(v[1]) for v in data.values()]); h=np.array([v[2] for v in data.values()])
  A=np.c_[X,np.ones(len(y))]; W=1/y; tr=h==0
  coef,*_=np.linalg.lstsq(A[tr]*W[tr,None], y[tr]*W[tr], rcond=None)
  err=(A@coef-y)/y
  print(key,side,'pooled %d: train %.1f held %.1f'%(len(cids),100*np.mean(abs(err[tr])),100*np.mean(abs(err[~tr]))))
  if key=='conv':
    specs=list(data.keys())
    for i in np.argsort(-abs(err))[:8]:
      s=json.loads(specs[i]); print('   c%(channels)d s%(size)d f%(filters)d k%(kernel)d st%(stride)d'%s, 'ys', np.round(data[specs[i]][1],4), 'pred %.4f err %+.0f%%'%((A@coef)[i],100*err[i]))
