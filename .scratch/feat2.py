import sqlite3,json,sys,numpy as np
db=sqlite3.connect(sys.argv[1]); n=int(sys.argv[2])
cids=[r[0] for r in db.execute("select id from campaigns where kind='layers' and status='done' order by started_at desc limit ?",(n,))]
def o(s):
  pad=s['kernel']//2; return (s['size']+2*pad-s['kernel'])//s['stride']+1
def extra(s,mode):
  out=s['filters']*o(s)**2; im=s['channels']*s['kernel']**2*o(s)**2
  return {'base':[], 'out':[out], 'im2col':[im], 'both':[out,im]}[mode]
for side in ('edge','device'):
  res={}
  for mode in ('base','out','im2col','both'):
    errs=[]
    for c in cids:
      rows=db.execute("select spec_json, features_json, run_ms, held_out from measurements where campaign_id=? and side=? and regression_key='conv'",(c,side)).fetchall()
      X=np.array([json.loads(f)+extra(json.loads(s),mode) for s,f,y,h in rows]); y=np.array([r[2] for r in rows]); h=np.array([r[3] for r in rows])
      A=np.c_[X,np.ones(len(y))]; sc=A.max(0); A=A/sc; W=1/y; tr=h==0
      coef,*_=np.linalg.lstsq(A[tr]*W[tr,None], y[tr]*W[tr], rcond=None)
      err=(A@coef-y)/y
      errs.append('%.1f/%.1f'%(100*np.mean(abs(err[tr])),100*np.mean(abs(err[~tr]))))
    res[mode]=' '.join(errs)
  for k,v in res.items(): print(side,k,v)
