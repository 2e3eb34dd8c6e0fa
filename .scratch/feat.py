import sqlite3,json,sys,numpy as np
db=sqlite3.connect(sys.argv[1]); n=int(sys.argv[2])
cids=[r[0] for r in db.execute("select id from campaigns where kind='layers' and status='done' order by started_at desc limit ?",(n,))]
def outsz(s):
  pad=s['kernel']//2; o=(s['size']+2*pad-s['kernel'])//s['stride']+1; return s['filters']*o*o
for mode in ('single','pooled'):
 for side in ('edge','device'):
  res={}
  for extra in ('base','+out'):
    errs=[]
    groups=[cids] if mode=='pooled' else [[c] for c in cids]
    for g in groups:
      data={}
      for c in g:
        for s,f,y,h in db.execute("select spec_json, features_json, run_ms, held_out from measurements where campaign_id=? and side=? and regression_key='conv'",(c,side)):
          sp=json.loads(s); x=json.loads(f)
          if extra=='+out': x=x+[outsz(sp)]
          data.setdefault(s,[x,[],h])[1].append(y)
      X=np.array([v[0] for v in data.values()]); y=np.array([np.median(v[1]) for v in data.values()]); h=np.array([v[2] for v in data.values()])
      A=np.c_[X,np.ones(len(y))]; W=1/y; tr=h==0
      coef,*_=np.linalg.lstsq(A[tr]*W[tr,None], y[tr]*W[tr], rcond=None)
      err=(A@coef-y)/y
      errs.append('%.1f/%.1f'%(100*np.mean(abs(err[tr])),100*np.mean(abs(err[~tr]))))
    res[extra]=errs
  print(mode, side, res)
