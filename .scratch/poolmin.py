import sqlite3,json,sys,numpy as np
db=sqlite3.connect(sys.argv[1]); sel=sys.argv[2]
cids=[r[0] for r in db.execute("select id from campaigns where kind='layers' and status='done' order by started_at")]
cids=eval('cids'+sel)
for agg in ('median','min'):
 for key in ('conv','fc'):
  for side in ('edge','device'):
    data={}
    for c in cids:
      for s,f,y,h in db.execute("select spec_json, features_json, run_ms, held_out from measurements where campaign_id=? and side=? and regression_key=?",(c,side,key)):
        data.setdefault(s,[json.loads(f),[],h])[1].append(y)
    X=np.array([v[0] for v in data.values()]); y=np.array([getattr(np,agg)(v[1]) for v in data.values()]); h=np.array([v[2] for v in data.values()])
    A=np.c_[X,np.ones(len(y))]; sc=A.max(0); A=A/sc; W=1/y; tr=h==0
    coef,*_=np.linalg.lstsq(A[tr]*W[tr,None], y[tr]*W[tr], rcond=None)
    err=(A@coef-y)/y
    print(agg,key,side,'train %.1f held %.1f'%(100*np.mean(abs(err[tr])),100*np.mean(abs(err[~tr]))))
