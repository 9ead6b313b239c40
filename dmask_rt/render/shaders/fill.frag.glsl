#version 330 core
// Depth 1.0 (eye openings) lets the eyeballs pass the depth test there; 0.0 (mouth, and
// the clear value everywhere else) keeps them out. Alpha 1 marks an opening, which the
// back of the skin may not paint over.
flat in vec4 v_color_depth;
out vec4 f_color;

void main() {
    f_color = vec4(v_color_depth.rgb, 1.0);
    gl_FragDepth = v_color_depth.a;
}
