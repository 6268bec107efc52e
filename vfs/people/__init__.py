"""Face detection and grouping: faces found in display renditions become people in by-person/.

Optional: needs the `faces` extra (dlib-bin, face-recognition-models, numpy). Nothing is downloaded at
run time; the model files ship inside the face-recognition-models wheel/sdist.
"""
